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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from lmtools.constants import LOG_ZERO
from lmtools.errors import LmError
from lmtools.ngram.counts import Counts
from lmtools.ngram.model import NGramModel
from lmtools.vocab import BOS_ID, SPECIALS, UNK_ID

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # used for an order whose modified-KN discounts are degenerate
KATZ_K = 5  # Good-Turing discounts apply to counts 1..KATZ_K (Katz 1987)
# Katz: a context whose discounts leave less than this share for unseen words (every count above K,
# so nothing is discounted) gets a larger denominator (see ``katz_denominators``); SRILM's Prob_Epsilon
KATZ_MIN_LEFTOVER = 3e-6
STUPID_ALPHA = 0.4  # Brants et al. 2007

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


def _default_warn(msg: str) -> None:
    from lmtools.messages import warn

    warn(msg)


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


# ----------------------------------------------------------------------------------------------
# Index over the count arrays


class Index:
    """Prefix and suffix positions of every n-gram in the order below (orders >= 2).

    ``pre[n][i]``: row of ngrams[n-2] equal to ngrams[n-1][i, :-1] (its context h);
    ``suf[n][i]``: row of ngrams[n-2] equal to ngrams[n-1][i, 1:] (h'w, the lower-order n-gram).
    """

    def __init__(self, ngrams: Sequence[np.ndarray], what: str = "counts"):
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
    nk = count_of_counts(a, 4)
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
class _Order:
    alpha: np.ndarray  # float64 per n-gram
    gamma: np.ndarray | float  # per context row of the order below (float for unigrams)


def _prune_masks(counts: Counts, prune: Sequence[int] | None) -> list[np.ndarray | None]:
    N = counts.order
    if not prune:
        return [None] * N
    t = [int(x) for x in prune]
    _check_prune(t)
    t = t + [t[-1]] * max(0, N - len(t))
    masks: list = [None]
    for n in range(2, N + 1):
        masks.append(counts.counts[n - 1] <= t[n - 1] if t[n - 1] > 0 else None)
    return masks


def _log10(p: np.ndarray, clip_one: bool = True) -> np.ndarray:
    with np.errstate(divide="ignore"):
        lp = np.log10(p)
    lp = np.where(p > 0, lp, LOG_ZERO)
    if clip_one:
        lp = np.minimum(lp, 0.0)
    return lp.astype(np.float32)


def _assemble(counts: Counts, index: Index, orders: list[_Order], form: str, method: str, info: dict,
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
        o = orders[n - 1]
        ctx, suf = index.pre[n], index.suf[n]
        m_ctx = counts.ngrams[n - 2].shape[0]
        lower = probs[n - 2][suf]
        pruned = masks[n - 1]
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
        probs.append(p)
        bows.append(bow)
    ngrams, logprob, backoff = [], [], []
    for n in range(1, N + 1):
        keep = masks[n - 1]
        keep = None if keep is None else ~keep
        lp = _log10(probs[n - 1], clip_one=(form != "stupid"))
        if n < N:
            m = counts.ngrams[n - 1].shape[0]
            is_ctx = np.bincount(index.pre[n + 1], minlength=m) > 0
            if form == "stupid":
                bo = np.full(m, math.log10(stupid_alpha), np.float32)
            else:
                bo = np.where(is_ctx, _log10(bows[n - 1], clip_one=False), 0.0).astype(np.float32)
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


def _raw(counts: Counts, n: int) -> np.ndarray:
    c = counts.counts[n - 1].astype(np.int64)
    if n == 1:
        c = c.copy()
        c[BOS_ID] = 0  # <s> is never predicted
    return c


def _context_sums(counts: Counts, index: Index, n: int, values: np.ndarray) -> np.ndarray:
    """sum of values over the n-grams of each context (order n >= 2), per row of order n-1."""
    return np.bincount(index.pre[n], weights=values, minlength=counts.ngrams[n - 2].shape[0])


def _check_nonempty(total: float) -> None:
    if total <= 0:
        raise LmError("the counts hold no words", "count a non-empty text")


def _discounted(counts: Counts, index: Index, n: int, a: np.ndarray, D: np.ndarray) -> _Order:
    """alpha = (a - d)/S(h), gamma = sum_x d(hx) / S(h) with d = min(D(a), a) (D indexed by a, capped)."""
    d = np.minimum(D[np.minimum(a, D.shape[0] - 1)], a.astype(np.float64))
    if n == 1:
        S = float(a.sum())
        _check_nonempty(S)
        return _Order(alpha=(a - d) / S, gamma=float(d.sum()) / S)
    S = _context_sums(counts, index, n, a.astype(np.float64))
    safe = np.where(S > 0, S, 1.0)
    alpha = (a - d) / safe[index.pre[n]]
    gamma = np.where(S > 0, _context_sums(counts, index, n, d) / safe, 0.0)
    return _Order(alpha=alpha, gamma=gamma)


def _form(interpolate: bool | None, default: bool) -> str:
    return "interpolated" if (default if interpolate is None else interpolate) else "backoff"


def _per_order(values, N: int, what: str) -> list:
    """Expand an option given per order (the last value repeats) to N entries."""
    if values is None:
        return [None] * N
    vals = list(values)
    if not vals:
        return [None] * N
    if len(vals) > N:
        raise LmError(f"{what} given for {len(vals)} orders, the model has {N}", f"give at most {N} values")
    return vals + [vals[-1]] * (N - len(vals))


# ----------------------------------------------------------------------------------------------
# Methods


def kenlm_pending(counts: Counts, index: Index) -> list[int | None]:
    """Rows (per order 1..N-1) of the suffixes of the last N-gram in suffix order (the last word
    compared first): the n-grams KenLM's lmplz still holds when its counting pass ends."""
    N = counts.order
    out: list[int | None] = [None] * N
    g = counts.ngrams[N - 1]
    if N < 2 or g.shape[0] == 0:
        return out
    cand = np.arange(g.shape[0])
    for col in range(N - 1, -1, -1):
        v = g[cand, col]
        cand = cand[v == v.max()]
    row = int(cand[0])
    for n in range(N - 1, 0, -1):
        row = int(index.suf[n + 1][row])
        out[n - 1] = row
    return out


def modified_kneser_ney(counts: Counts, discounts=None, interpolate: bool | None = None, prune=None,
                        warn: Callable[[str], None] | None = None, kenlm_compat: bool = False) -> NGramModel:
    """Interpolated (default) or backoff modified Kneser-Ney, as DESIGN.md defines it.

    ``discounts``: None to estimate, or per order (last repeats) a (D1, D2, D3+) triple or None.
    ``kenlm_compat``: reproduce lmplz's counts of counts digit for digit: the suffixes of the last
    N-gram in suffix order enter n_k with their raw count instead of their adjusted count (this
    assumes word ids in order of first appearance, as lm-count assigns them)."""
    warn = warn or _default_warn
    N = counts.order
    index = Index(counts.ngrams)
    a = adjusted_counts(counts, index)
    stats = a
    if kenlm_compat:
        stats = [x.copy() for x in a]
        for n, row in enumerate(kenlm_pending(counts, index), start=1):
            if row is not None:
                stats[n - 1][row] = counts.counts[n - 1][row]
    user = _per_order(discounts, N, "--discount")
    orders, info_d, fallback = [], [], []
    for n in range(1, N + 1):
        if user[n - 1] is not None:
            D = tuple(float(x) for x in user[n - 1])
            if len(D) == 1:
                D = D * 3
            if len(D) != 3 or any(d < 0 for d in D):
                raise LmError(f"modified Kneser-Ney needs three discounts >= 0 per order, got {user[n - 1]}",
                              "e.g. --discount 0.5,1,1.5")
        else:
            D, ok, nk = mkn_discounts(stats[n - 1])
            if not ok:
                fallback.append(n)
                warn(f"modified Kneser-Ney discounts of order {n} are degenerate "
                     f"(adjusted counts of counts n1..n4 = {' '.join(map(str, nk))}); "
                     f"using {' '.join(f'{x:g}' for x in FALLBACK_DISCOUNTS)} for that order")
        info_d.append([float(x) for x in D])
        orders.append(_discounted(counts, index, n, a[n - 1], np.array((0.0,) + tuple(D))))
    info = {"discounts": info_d, "discount_fallback": fallback}
    if kenlm_compat:
        info["kenlm_compat"] = True
    return _assemble(counts, index, orders, _form(interpolate, True), "kn-modified", info, prune)


def kneser_ney(counts: Counts, discount=None, interpolate: bool | None = None, prune=None,
               warn: Callable[[str], None] | None = None) -> NGramModel:
    """Kneser-Ney with one discount per order, D = n1/(n1 + 2 n2) over the adjusted counts."""
    warn = warn or _default_warn
    N = counts.order
    index = Index(counts.ngrams)
    a = adjusted_counts(counts, index)
    user = _per_order(discount, N, "--discount")
    orders, info_d, fallback = [], [], []
    for n in range(1, N + 1):
        D = _single_discount(a[n - 1], user[n - 1], n, "Kneser-Ney", warn, fallback)
        info_d.append(D)
        orders.append(_discounted(counts, index, n, a[n - 1], np.array([0.0, D])))
    return _assemble(counts, index, orders, _form(interpolate, True), "kn",
                     {"discounts": info_d, "discount_fallback": fallback}, prune)


def _single_discount(c: np.ndarray, user, n: int, name: str, warn, fallback: list) -> float:
    if user is not None:
        vals = [float(x) for x in (user if isinstance(user, (list, tuple)) else [user])]
        if len(vals) != 1 or vals[0] < 0:
            raise LmError(f"{name} needs one discount >= 0 per order, got {user}", "e.g. --discount 0.75")
        return vals[0]
    nk = count_of_counts(c, 2)
    n1, n2 = int(nk[1]), int(nk[2])
    if n1 == 0 or n2 == 0:
        fallback.append(n)
        warn(f"{name} discount of order {n} is degenerate (n1={n1}, n2={n2}); using 0.5 for that order")
        return 0.5
    return n1 / (n1 + 2.0 * n2)


def absolute_discounting(counts: Counts, discount=None, interpolate: bool | None = None, prune=None,
                         warn: Callable[[str], None] | None = None) -> NGramModel:
    """Absolute discounting over raw counts, D = n1/(n1 + 2 n2) per order unless given."""
    warn = warn or _default_warn
    N = counts.order
    index = Index(counts.ngrams)
    user = _per_order(discount, N, "--discount")
    orders, info_d, fallback = [], [], []
    for n in range(1, N + 1):
        c = _raw(counts, n)
        D = _single_discount(c, user[n - 1], n, "absolute discounting", warn, fallback)
        info_d.append(D)
        orders.append(_discounted(counts, index, n, c, np.array([0.0, D])))
    return _assemble(counts, index, orders, _form(interpolate, True), "abs",
                     {"discounts": info_d, "discount_fallback": fallback}, prune)


def witten_bell(counts: Counts, interpolate: bool | None = None, prune=None, warn=None) -> NGramModel:
    """Witten-Bell: alpha = c(hw)/(c(h) + T(h)), gamma = T(h)/(c(h) + T(h)), T = distinct followers."""
    N = counts.order
    index = Index(counts.ngrams)
    orders = []
    for n in range(1, N + 1):
        c = _raw(counts, n).astype(np.float64)
        if n == 1:
            S, T = float(c.sum()), float((c > 0).sum())
            _check_nonempty(S)
            orders.append(_Order(alpha=c / (S + T), gamma=T / (S + T)))
        else:
            S = _context_sums(counts, index, n, c)
            T = _context_sums(counts, index, n, (c > 0).astype(np.float64))
            den = np.where(S + T > 0, S + T, 1.0)
            orders.append(_Order(alpha=c / den[index.pre[n]], gamma=np.where(S + T > 0, T / den, 0.0)))
    return _assemble(counts, index, orders, _form(interpolate, True), "wb", {}, prune)


def add_k(counts: Counts, k: float = 1.0, prune=None, warn=None, method: str = "add-k") -> NGramModel:
    """Add-k in back-off form: seen n-grams and all unigrams get (c + k)/(c(h) + k|V|) exactly as
    Laplace/Lidstone; the mass add-k gives to the words unseen after h is spread over them in
    proportion to the lower order (not uniformly), which is what the ARPA form can hold."""
    if not k > 0:
        raise LmError(f"add-k needs k > 0, got {k}", "e.g. -k 1 (Laplace) or -k 0.01")
    N = counts.order
    index = Index(counts.ngrams)
    V = counts.ngrams[0].shape[0] - 1
    orders = []
    for n in range(1, N + 1):
        c = _raw(counts, n).astype(np.float64)
        if n == 1:
            S = float(c.sum())
            _check_nonempty(S)
            alpha = (c + k) / (S + k * V)
            alpha[BOS_ID] = 0.0
            orders.append(_Order(alpha=alpha, gamma=0.0))
        else:
            S = _context_sums(counts, index, n, c)
            T = _context_sums(counts, index, n, np.ones_like(c))
            alpha = (c + k) / (S + k * V)[index.pre[n]]
            gamma = np.where(T > 0, k * (V - T) / (S + k * V), 0.0)
            orders.append(_Order(alpha=alpha, gamma=np.maximum(gamma, 0.0)))
    return _assemble(counts, index, orders, "backoff", method, {"k": float(k)}, prune)


def mle(counts: Counts, prune=None, warn=None) -> NGramModel:
    """Maximum likelihood: p(w|h) = c(hw)/c(h) for the longest context seen in training; a word
    unseen after a seen context has p = 0 (log10 written as -99), reported, not hidden."""
    index = Index(counts.ngrams)
    orders = _relative_frequencies(counts, index, zero_gamma_per_context=True)
    return _assemble(counts, index, orders, "backoff", "mle", {}, prune)


def _relative_frequencies(counts: Counts, index: "Index", zero_gamma_per_context: bool) -> list:
    """Orders holding c(hw)/c(h) and no backoff mass (MLE; stupid backoff's scores)."""
    orders = []
    for n in range(1, counts.order + 1):
        c = _raw(counts, n).astype(np.float64)
        if n == 1:
            S = float(c.sum())
            _check_nonempty(S)
            orders.append(_Order(alpha=c / S, gamma=0.0))
        else:
            S = _context_sums(counts, index, n, c)
            gamma = np.zeros_like(S) if zero_gamma_per_context else 0.0
            orders.append(_Order(alpha=c / np.where(S > 0, S, 1.0)[index.pre[n]], gamma=gamma))
    return orders


def good_turing_discounts(c: np.ndarray, K: int = KATZ_K) -> tuple[np.ndarray, int]:
    """Katz's discount ratios d_r (r = 0..K; d_0 unused) of one order, and the K actually used.

    d_r = (r*/r - A)/(1 - A), r* = (r+1) n_{r+1}/n_r, A = (K+1) n_{K+1}/n_1. K is lowered until every
    d_r lies in (0, 1]; K = 0 means no discounting for that order."""
    nk = count_of_counts(c, K + 1).astype(np.float64)
    for k in range(K, 0, -1):
        if nk[1] == 0:
            break
        A = (k + 1) * nk[k + 1] / nk[1]
        if A >= 1:
            continue
        d = np.ones(k + 1)
        ok = True
        for r in range(1, k + 1):
            if nk[r] == 0:
                ok = False
                break
            rstar = (r + 1) * nk[r + 1] / nk[r]
            d[r] = (rstar / r - A) / (1 - A)
            if not (0 < d[r] <= 1):
                ok = False
                break
        if ok:
            return d, k
    return np.ones(1), 0


def katz_denominators(S: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Extra counts k per context so that Katz leaves mass for unseen words everywhere.

    ``S``: the context's total count, ``left``: the count mass its Good-Turing discounts took off
    (sum of r - d_r r). When every count of a context is above K nothing is discounted and the
    context would give p = 0 to every word not seen after it (backoff weight log10 0). As SRILM
    does (a remedy it credits to Doug Paul and the CMU toolkit), the estimator's denominator is then
    raised by the fewest whole counts k >= 1 that leave at least KATZ_MIN_LEFTOVER of the mass:
    alpha(hw) = d_r r / (S + k), gamma(h) = (left + k) / (S + k); k = 0 for every other context."""
    S = np.asarray(S, np.float64)
    left = np.asarray(left, np.float64)
    eps = KATZ_MIN_LEFTOVER
    short = (S > 0) & (left < eps * S)
    k = np.zeros(S.shape, np.float64)
    if short.any():
        need = np.ceil((eps * S[short] - left[short]) / (1.0 - eps))
        k[short] = np.maximum(1.0, need)
        # (S - left) / (S + k) <= 1 - eps must hold after rounding too
        bad = (S[short] - left[short]) / (S[short] + k[short]) > 1.0 - eps
        k[np.flatnonzero(short)[bad]] += 1.0
    return k


def katz(counts: Counts, prune=None, warn=None) -> NGramModel:
    """Katz backoff with Good-Turing discounts for counts 1..5 (counts above 5 are not discounted).

    Contexts (and the unigram level, when some words were never seen) whose every count is above K
    keep mass for unseen words through a larger denominator (``katz_denominators``); the number of
    such contexts per order is recorded in the model's info (``katz_enlarged``)."""
    warn = warn or _default_warn
    N = counts.order
    index = Index(counts.ngrams)
    orders, used, enlarged = [], [], []
    base = None
    for n in range(1, N + 1):
        c = _raw(counts, n)
        d, K = good_turing_discounts(c)
        used.append(K)
        if K < KATZ_K:
            warn(f"Good-Turing discounts of order {n} are only valid up to count {K}; counts above are not discounted")
        ratio = np.ones(max(int(c.max()) if c.size else 0, K) + 1)
        ratio[: K + 1] = d[: K + 1]
        dc = ratio[c] * c
        if n == 1:
            S = float(c.sum())
            _check_nonempty(S)
            unseen = (c == 0)
            unseen[BOS_ID] = False
            base = unseen / unseen.sum() if unseen.any() else None
            left = float(np.sum(c - dc))
            # with no unseen word there is nothing to reserve mass for
            k = float(katz_denominators(np.array([S]), np.array([left]))[0]) if base is not None else 0.0
            enlarged.append(int(k > 0))
            alpha = dc / (S + k)
            orders.append(_Order(alpha=alpha, gamma=max(0.0, (left + k) / (S + k))))
        else:
            S = _context_sums(counts, index, n, c.astype(np.float64))
            left = _context_sums(counts, index, n, c - dc)
            k = katz_denominators(S, left)
            enlarged.append(int(np.count_nonzero(k)))
            den = np.where(S > 0, S + k, 1.0)
            alpha = dc / den[index.pre[n]]
            gamma = np.where(S > 0, (left + k) / den, 0.0)
            orders.append(_Order(alpha=alpha, gamma=gamma))
    if base is not None:
        base = base.astype(np.float64)
    return _assemble(counts, index, orders, "backoff", "katz", {"good_turing_max": used, "katz_enlarged": enlarged},
                     prune, base=base)


def stupid_backoff(counts: Counts, alpha: float = STUPID_ALPHA, prune=None, warn=None) -> NGramModel:
    """Stupid backoff (Brants et al. 2007): S(w|h) = c(hw)/c(h) if seen, else alpha S(w|h');
    S(w) = c(w)/N. Scores, not probabilities (scores_only=True)."""
    if not 0 < alpha <= 1:
        raise LmError(f"stupid backoff needs 0 < alpha <= 1, got {alpha}", "e.g. --alpha 0.4")
    index = Index(counts.ngrams)
    orders = _relative_frequencies(counts, index, zero_gamma_per_context=False)
    return _assemble(counts, index, orders, "stupid", "stupid", {"alpha": float(alpha)}, prune,
                     stupid_alpha=alpha)


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
        _check_prune([int(x) for x in prune])
    return m


def _check_prune(t: list[int]) -> None:
    if any(x < 0 for x in t):
        raise LmError(f"--prune thresholds must be >= 0, got {' '.join(map(str, t))}", "e.g. --prune 0,0,1")
    if t[0] != 0:
        raise LmError("unigrams cannot be pruned", "the first --prune threshold must be 0, e.g. --prune 0,1,1")
    if any(b < a for a, b in zip(t, t[1:])):
        raise LmError(f"--prune thresholds must not decrease with the order, got {' '.join(map(str, t))}",
                      "e.g. --prune 0,0,1,1,1")


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
    _check_nonempty(float(_raw(counts, 1).sum()))
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
