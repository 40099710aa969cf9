"""Entropy-based pruning of back-off n-gram models: a stage NGramModel -> NGramModel.

Stolcke (1998), "Entropy-based Pruning of Backoff Language Models". Removing an explicit n-gram
(h, w) of order >= 2 makes p(w | h) a back-off estimate alpha'(h) p(w | h'), h' = h without its oldest
word, where the backoff weight of h is recomputed so that p(. | h) still sums to one:

    alpha'(h) = (1 - S(h) + p(w|h)) / (1 - L(h) + p(w|h'))

with S(h) = sum of p(v|h) and L(h) = sum of p(v|h') over the explicit extensions v of h (w among
them). Only p(. | h) changes, so the relative entropy of the new model to the old one is P(h) times
the divergence of the two distributions given h (the paper's formula):

    D(h, w) = -P(h) { p(w|h) [ln p(w|h') + ln alpha'(h) - ln p(w|h)]
                      + (1 - S(h)) [ln alpha'(h) - ln alpha(h)] },   alpha(h) = (1 - S(h)) / (1 - L(h))

(the second term: the words h backed off for already, whose mass 1 - S(h) moves from alpha to alpha').
P(h) is the history's marginal probability by the chain rule under the model, p(h1) p(h2|h1) ...;
the sentence start <s>, never predicted, takes the probability of </s> (every sentence has one of
each). The criterion compared with the threshold is the relative perplexity increase
exp(D) - 1 (~ D for small D), clipped at 0 against rounding, as the paper states its threshold.

Every n-gram is judged against the original model (the paper's approximation: the removals are
assumed not to interact). An n-gram is removed when its criterion is below the threshold, except
one that is the context (the oldest n-1 words) of a kept n-gram of the order above: the model stays
prefix-closed. Unigrams are never removed. So an n-gram is kept exactly when its *effective*
criterion, the largest criterion among it and its extensions (recursively), reaches the threshold;
the size-targeted form keeps the n-grams with the N - (unigram count) largest effective criteria
(fewer on ties). Afterwards the backoff weight of every context that lost an extension, or one of
whose kept extensions' lower-order probability p(w|h') changed (its suffix n-gram was removed, or a
backoff on the way changed), is recomputed from the kept probabilities, lowest order first, so that
p(. | h) sums to one again; every other weight is kept as stored.

Interpolated models (kn-modified, the default) are held in back-off form (ARPA's), so the same
applies; pruning a Kneser-Ney model this way is common practice, though KN's lower-order
distributions (continuation counts) are poor back-off estimates once the higher orders are thinned
(Chelba et al. 2010, "Study on interaction between entropy pruning and Kneser-Ney smoothing").
"""

from __future__ import annotations

import math

import numpy as np

from lmtools.constants import LOG_ZERO
from lmtools.errors import LmError
from lmtools.ngram.model import NGramModel
from lmtools.vocab import BOS_ID, EOS_ID


class _Rows:
    """The model's n-grams in one global row numbering, with the walk's arrays (kernels/prune.py)."""

    def __init__(self, model: NGramModel):
        from lmtools.kernels.smooth import prefix_index

        N = model.order
        self.N = N
        self.sizes = model.sizes()
        self.off = np.zeros(N + 1, np.int64)
        self.off[1:] = np.cumsum(self.sizes)
        self.rows = [np.ascontiguousarray(g, dtype=np.int32) for g in model.ngrams]
        self.word = np.ascontiguousarray(np.concatenate([g[:, -1] for g in self.rows]), dtype=np.int32)
        self.lp = np.concatenate([np.asarray(x, np.float32) for x in model.logprob])
        self.bo = np.concatenate([np.asarray(x, np.float32) for x in model.backoff])
        total = int(self.off[N])
        self.child_lo = np.zeros(total, np.int64)
        self.child_hi = np.zeros(total, np.int64)
        self.pre: list = [None, None]  # pre[n][i]: row (within order n-1) of order-n row i's context
        for n in range(2, N + 1):
            pre = prefix_index(self.rows[n - 1], self.rows[n - 2]) if self.sizes[n - 1] else np.zeros(0, np.int64)
            if pre.size and pre.min() < 0:
                raise LmError(f"the model has {n}-grams whose first {n - 1} words are not a {n - 1}-gram, which "
                              "entropy pruning needs (models from lmtools, KenLM and SRILM have them)",
                              "prune a model written by one of them")
            self.pre.append(pre)
            per = np.bincount(pre, minlength=self.sizes[n - 2])
            hi = np.cumsum(per)
            self.child_lo[self.off[n - 2]:self.off[n - 1]] = self.off[n - 1] + hi - per
            self.child_hi[self.off[n - 2]:self.off[n - 1]] = self.off[n - 1] + hi
        self.uni_row = np.full(len(model.vocab), -1, np.int64)
        self.uni_row[self.rows[0][:, 0]] = np.arange(self.sizes[0])

    def order_slice(self, n: int) -> slice:
        return slice(int(self.off[n - 1]), int(self.off[n]))

    def lower(self, n: int, bo: np.ndarray, alive: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
        """log10 p(w | h') (float64) for the order-n rows (or the rows ``which`` of order n), under
        the model of the live rows ``alive`` with backoffs ``bo``."""
        from lmtools.kernels.prune import lower_logp

        rows = self.rows[n - 1] if which is None else np.ascontiguousarray(self.rows[n - 1][which])
        out = np.empty(rows.shape[0], np.float64)
        if rows.shape[0]:
            lower_logp(rows, self.uni_row, self.word, self.lp, bo, alive, self.child_lo, self.child_hi, out)
        return out


def _history_logprob(R: _Rows) -> list[np.ndarray]:
    """log10 P(h) of every n-gram of orders 1..N-1 as a history, by the chain rule (explicit
    probabilities all the way: the model is prefix-closed); <s> takes p(</s>)."""
    lp1 = R.lp[R.order_slice(1)].astype(np.float64)
    uni = R.rows[0][:, 0]
    eos = R.uni_row[EOS_ID]
    lp1 = np.where(uni == BOS_ID, lp1[eos] if eos >= 0 else LOG_ZERO, lp1)
    out = [lp1]
    for n in range(2, R.N):
        out.append(out[-1][R.pre[n]] + R.lp[R.order_slice(n)])
    return out


def _criterion(p: np.ndarray, q: np.ndarray, ctx: np.ndarray, n_ctx: int, ph: np.ndarray) -> np.ndarray:
    """exp(D) - 1 for n-grams with probabilities p = p(w|h), q = p(w|h') and contexts ``ctx`` (rows
    of the order below, whose history probabilities are ``ph``): the module docstring's formula."""
    S = np.bincount(ctx, weights=p, minlength=n_ctx)
    L = np.bincount(ctx, weights=q, minlength=n_ctx)
    num = np.maximum(1.0 - S, 0.0)[ctx]  # the mass h gives to the words it backs off for
    den = np.maximum(1.0 - L, 0.0)[ctx]  # those words' mass under h'
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # p [ln p - ln q - ln alpha'], alpha' = (num + p) / (den + q); p = 0 contributes nothing
        t1 = np.where(p > 0, p * (np.log(p) - np.log(q) - np.log(num + p) + np.log(den + q)), 0.0)
        # num [ln alpha - ln alpha'] = num [ln(1 + q/den) - ln(1 + p/num)]; with den = 0 it is infinite:
        # such an n-gram (its context covers every word h' gives mass to) is never removed
        t2 = np.where(num > 0, num * (np.log1p(q / den) - np.log1p(p / num)), 0.0)
        D = t1 + t2
        D = np.where(np.isnan(D), np.inf, np.maximum(D, 0.0))
        return np.expm1(np.power(10.0, ph)[ctx] * D)


def entropy_criteria(model: NGramModel) -> list[np.ndarray | None]:
    """Per order (index n-1), the pruning criterion exp(D) - 1 of every n-gram (float64); None for
    the unigrams, which are never pruned."""
    _check(model)
    R = _Rows(model)
    return _criteria(R, _all_lower(R))


def _all_lower(R: _Rows) -> list:
    alive = np.ones(int(R.off[R.N]), np.bool_)
    return [None] + [R.lower(n, R.bo, alive) for n in range(2, R.N + 1)]


def _criteria(R: _Rows, lower: list) -> list:
    ph = _history_logprob(R)
    out: list = [None]
    for n in range(2, R.N + 1):
        p = np.power(10.0, R.lp[R.order_slice(n)].astype(np.float64))
        q = np.power(10.0, lower[n - 1])
        out.append(_criterion(p, q, R.pre[n], R.sizes[n - 2], ph[n - 2]))
    return out


def _effective(R: _Rows, crit: list) -> list:
    """Per order, the largest criterion among each n-gram and its extensions: an n-gram is kept
    exactly when this reaches the threshold (a kept extension keeps its context)."""
    eff: list = [None] * R.N
    for n in range(R.N, 1, -1):
        e = crit[n - 1].copy()
        if n < R.N and crit[n].size:
            per = np.bincount(R.pre[n + 1], minlength=R.sizes[n - 1])
            has = per > 0
            starts = (np.cumsum(per) - per)[has]
            e[has] = np.maximum(e[has], np.maximum.reduceat(eff[n], starts))
        eff[n - 1] = e
    return eff


def size_threshold(effective: list, n_unigrams: int, size: int) -> tuple[float, np.ndarray | None]:
    """(threshold, cut) for keeping at most ``size`` n-grams: the n-grams whose effective criterion
    exceeds ``cut`` are kept; threshold is the smallest number above cut (pruning with it keeps the
    same). (0, None) when the model already fits."""
    allowed = size - n_unigrams
    values = np.concatenate([e for e in effective[1:]]) if len(effective) > 1 else np.zeros(0)
    if values.size <= allowed:
        return 0.0, None
    cut = -np.partition(-values, allowed)[allowed]  # the (allowed+1)-th largest
    return float(np.nextafter(cut, np.inf)), cut


def prune_entropy(model: NGramModel, threshold: float | None = None, size: int | None = None) -> NGramModel:
    """The model with the n-grams whose removal raises its relative entropy (as relative perplexity
    increase, exp(D) - 1) by less than ``threshold`` removed, or, with ``size``, pruned to at most
    ``size`` n-grams in all (the smallest threshold that fits). See the module docstring."""
    if (threshold is None) == (size is None):
        raise ValueError("give one of threshold and size")
    _check(model)
    if threshold is not None and not (threshold >= 0 and math.isfinite(threshold)):
        raise LmError(f"entropy pruning threshold {threshold} is not a finite number >= 0", "e.g. 1e-8")
    n_uni = model.sizes()[0]
    if size is not None and size < n_uni:
        raise LmError(f"cannot prune to {size} n-grams: the model has {n_uni} unigrams, which are never pruned",
                      f"give a size of at least {n_uni}")
    info = dict(model.info)
    info["entropy_prune"] = {"threshold": threshold} if size is None else {"size": int(size)}
    if model.order < 2:
        return _replace(model, list(model.ngrams), list(model.logprob), list(model.backoff), info)
    R = _Rows(model)
    lower = _all_lower(R)
    eff = _effective(R, _criteria(R, lower))
    if size is not None:
        threshold, cut = size_threshold(eff, n_uni, size)
        info["entropy_prune"]["threshold"] = threshold
        keep = [np.ones(n_uni, np.bool_)] + [(e > cut) if cut is not None else np.ones(e.size, np.bool_)
                                             for e in eff[1:]]
    else:
        keep = [np.ones(n_uni, np.bool_)] + [e >= threshold for e in eff[1:]]
    alive = np.concatenate(keep)
    bo = _recompute_backoffs(R, lower, keep, alive)
    ngrams, logprob, backoff = [], [], []
    for n in range(1, R.N + 1):
        k, sl = keep[n - 1], R.order_slice(n)
        ngrams.append(np.ascontiguousarray(R.rows[n - 1][k]))
        logprob.append(R.lp[sl][k])
        backoff.append(bo[sl][k])
    return _replace(model, ngrams, logprob, backoff, info)


def _recompute_backoffs(R: _Rows, lower: list, keep: list, alive: np.ndarray) -> np.ndarray:
    """The backoffs (global rows, float32) after the removals: recomputed for the contexts that lost
    an extension or whose kept extensions' p(w|h') changed, lowest order first (p(w|h') of order k+1
    uses the backoffs of orders below k, already final)."""
    bo = R.bo.copy()
    for k in range(1, R.N):
        n = k + 1
        live, ctx = keep[n - 1], R.pre[n]
        if live.all() and all(keep[j - 1].all() for j in range(2, n)):
            continue  # no extension removed and nothing below: p(w|h') and the weights stand
        q_new = R.lower(n, bo, alive, np.flatnonzero(live))
        changed = ~live
        changed[live] = q_new != lower[n - 1][live]
        if not changed.any():
            continue
        m = R.sizes[k - 1]
        affected = np.bincount(ctx[changed], minlength=m) > 0
        p = np.power(10.0, R.lp[R.order_slice(n)][live].astype(np.float64))
        S = np.bincount(ctx[live], weights=p, minlength=m)
        L = np.bincount(ctx[live], weights=np.power(10.0, q_new), minlength=m)
        has = np.bincount(ctx[live], minlength=m) > 0
        num, den = 1.0 - S, 1.0 - L
        with np.errstate(divide="ignore", invalid="ignore"):
            # no extensions left: weight 1; no mass left under h' (every word explicit): weight 1 too
            # (unused); no mass left to give: weight 0 (log10: LOG_ZERO), as the estimators write it
            new = np.where(~has | (den <= 0), 0.0, np.where(num <= 0, LOG_ZERO, np.log10(num / den)))
        sl = R.order_slice(k)
        part = bo[sl]
        part[affected] = new[affected].astype(np.float32)
        bo[sl] = part
    return bo


def _check(model: NGramModel) -> None:
    if model.scores_only:
        raise LmError("the model holds stupid-backoff scores, not probabilities: entropy pruning needs a "
                      "probability model", "prune a model of another method (or use count cutoffs, --prune)")


def _replace(model: NGramModel, ngrams, logprob, backoff, info) -> NGramModel:
    return NGramModel(vocab=list(model.vocab), ngrams=ngrams, logprob=logprob, backoff=backoff,
                      method=model.method, info=info, provenance=dict(model.provenance),
                      scores_only=model.scores_only, text=model.text)
