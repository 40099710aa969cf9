"""The smoothing methods, each a function Counts -> NGramModel written as per-order alpha/gamma
(see ``lmtools.ngram.smoothing``, whose ``smooth`` picks one by name): modified and plain Kneser-Ney,
absolute discounting, Witten-Bell, add-k, MLE, Katz with Good-Turing discounts, stupid backoff."""

from __future__ import annotations

from typing import Callable

import numpy as np

from lmtools.errors import LmError
from lmtools.ngram.counts import Counts
from lmtools.ngram.model import NGramModel
from lmtools.ngram.smoothing_stages import (
    FALLBACK_DISCOUNTS, STUPID_ALPHA, Index, Order, adjusted_counts, assemble, check_nonempty, count_of_counts,
    discounted_order, form_of, group_sums, mkn_discounts_of, per_order, raw_counts,
)
from lmtools.vocab import BOS_ID

KATZ_K = 5  # Good-Turing discounts apply to counts 1..KATZ_K (Katz 1987)
# Katz: a context whose discounts leave less than this share for unseen words (every count above K,
# so nothing is discounted) gets a larger denominator (see ``katz_denominators``); SRILM's Prob_Epsilon
KATZ_MIN_LEFTOVER = 3e-6


def _default_warn(msg: str) -> None:
    from lmtools.messages import warn

    warn(msg)


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
    user = per_order(discounts, N, "--discount")
    orders, info_d, fallback = [], [], []
    for n in range(1, N + 1):
        D = mkn_order_discounts(user[n - 1], n, lambda: count_of_counts(stats[n - 1], 4), warn, fallback)
        info_d.append([float(x) for x in D])
        orders.append(discounted_order(counts, index, n, a[n - 1], np.array((0.0,) + tuple(D))))
    info = {"discounts": info_d, "discount_fallback": fallback}
    if kenlm_compat:
        info["kenlm_compat"] = True
    return assemble(counts, index, orders, form_of(interpolate, True), "kn-modified", info, prune)


def mkn_order_discounts(user, n: int, nk: Callable[[], np.ndarray], warn, fallback: list) -> tuple:
    """(D1, D2, D3+) of order n: the user's (one value: all three), or estimated from the counts of
    counts n_0..n_4 of its adjusted counts (``nk()``, asked only then), with a warning and ``n``
    appended to ``fallback`` when they are degenerate."""
    if user is not None:
        D = tuple(float(x) for x in user)
        if len(D) == 1:
            D = D * 3
        if len(D) != 3 or any(d < 0 for d in D):
            raise LmError(f"modified Kneser-Ney needs three discounts >= 0 per order, got {user}",
                          "e.g. --discount 0.5,1,1.5")
        return D
    D, ok, n1_4 = mkn_discounts_of(nk())
    if not ok:
        fallback.append(n)
        warn(f"modified Kneser-Ney discounts of order {n} are degenerate "
             f"(adjusted counts of counts n1..n4 = {' '.join(map(str, n1_4))}); "
             f"using {' '.join(f'{x:g}' for x in FALLBACK_DISCOUNTS)} for that order")
    return D


def kneser_ney(counts: Counts, discount=None, interpolate: bool | None = None, prune=None,
               warn: Callable[[str], None] | None = None) -> NGramModel:
    """Kneser-Ney with one discount per order, D = n1/(n1 + 2 n2) over the adjusted counts."""
    warn = warn or _default_warn
    N = counts.order
    index = Index(counts.ngrams)
    a = adjusted_counts(counts, index)
    user = per_order(discount, N, "--discount")
    orders, info_d, fallback = [], [], []
    for n in range(1, N + 1):
        D = _single_discount(a[n - 1], user[n - 1], n, "Kneser-Ney", warn, fallback)
        info_d.append(D)
        orders.append(discounted_order(counts, index, n, a[n - 1], np.array([0.0, D])))
    return assemble(counts, index, orders, form_of(interpolate, True), "kn",
                     {"discounts": info_d, "discount_fallback": fallback}, prune)


def _single_discount(c: np.ndarray, user, n: int, name: str, warn, fallback: list) -> float:
    return single_discount(lambda: count_of_counts(c, 2), user, n, name, warn, fallback)


def single_discount(nk: Callable[[], np.ndarray], user, n: int, name: str, warn, fallback: list) -> float:
    """The one discount of order n (Kneser-Ney, absolute discounting): the user's, or n1/(n1 + 2 n2)
    from the counts of counts ``nk()`` (asked only then; sums, so a partitioned estimation adds them)."""
    if user is not None:
        vals = [float(x) for x in (user if isinstance(user, (list, tuple)) else [user])]
        if len(vals) != 1 or vals[0] < 0:
            raise LmError(f"{name} needs one discount >= 0 per order, got {user}", "e.g. --discount 0.75")
        return vals[0]
    nk = nk()
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
    user = per_order(discount, N, "--discount")
    orders, info_d, fallback = [], [], []
    for n in range(1, N + 1):
        c = raw_counts(counts, n)
        D = _single_discount(c, user[n - 1], n, "absolute discounting", warn, fallback)
        info_d.append(D)
        orders.append(discounted_order(counts, index, n, c, np.array([0.0, D])))
    return assemble(counts, index, orders, form_of(interpolate, True), "abs",
                     {"discounts": info_d, "discount_fallback": fallback}, prune)


def witten_bell(counts: Counts, interpolate: bool | None = None, prune=None, warn=None) -> NGramModel:
    """Witten-Bell: alpha = c(hw)/(c(h) + T(h)), gamma = T(h)/(c(h) + T(h)), T = distinct followers."""
    N = counts.order
    index = Index(counts.ngrams)
    orders = []
    for n in range(1, N + 1):
        c = raw_counts(counts, n).astype(np.float64)
        if n == 1:
            S, T = float(c.sum()), float((c > 0).sum())
            check_nonempty(S)
            orders.append(Order(alpha=c / (S + T), gamma=T / (S + T)))
        else:
            orders.append(witten_bell_groups(c, index.pre[n], counts.ngrams[n - 2].shape[0]))
    return assemble(counts, index, orders, form_of(interpolate, True), "wb", {}, prune)


def witten_bell_groups(c: np.ndarray, ctx: np.ndarray, m_ctx: int) -> Order:
    """Witten-Bell of an order n >= 2 from its raw counts (float64), ``ctx`` numbering the contexts."""
    S = group_sums(ctx, m_ctx, c)
    T = group_sums(ctx, m_ctx, (c > 0).astype(np.float64))
    den = np.where(S + T > 0, S + T, 1.0)
    return Order(alpha=c / den[ctx], gamma=np.where(S + T > 0, T / den, 0.0))


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
        c = raw_counts(counts, n).astype(np.float64)
        if n == 1:
            S = float(c.sum())
            check_nonempty(S)
            alpha = (c + k) / (S + k * V)
            alpha[BOS_ID] = 0.0
            orders.append(Order(alpha=alpha, gamma=0.0))
        else:
            orders.append(add_k_groups(c, index.pre[n], counts.ngrams[n - 2].shape[0], k, V))
    return assemble(counts, index, orders, "backoff", method, {"k": float(k)}, prune)


def add_k_groups(c: np.ndarray, ctx: np.ndarray, m_ctx: int, k: float, V: int) -> Order:
    """Add-k of an order n >= 2 from its raw counts (float64), ``ctx`` numbering the contexts."""
    S = group_sums(ctx, m_ctx, c)
    T = group_sums(ctx, m_ctx, np.ones_like(c))
    alpha = (c + k) / (S + k * V)[ctx]
    gamma = np.where(T > 0, k * (V - T) / (S + k * V), 0.0)
    return Order(alpha=alpha, gamma=np.maximum(gamma, 0.0))


def mle(counts: Counts, prune=None, warn=None) -> NGramModel:
    """Maximum likelihood: p(w|h) = c(hw)/c(h) for the longest context seen in training; a word
    unseen after a seen context has p = 0 (log10 written as -99), reported, not hidden."""
    index = Index(counts.ngrams)
    orders = _relative_frequencies(counts, index, zero_gamma_per_context=True)
    return assemble(counts, index, orders, "backoff", "mle", {}, prune)


def _relative_frequencies(counts: Counts, index: "Index", zero_gamma_per_context: bool) -> list:
    """Orders holding c(hw)/c(h) and no backoff mass (MLE; stupid backoff's scores)."""
    orders = []
    for n in range(1, counts.order + 1):
        c = raw_counts(counts, n).astype(np.float64)
        if n == 1:
            S = float(c.sum())
            check_nonempty(S)
            orders.append(Order(alpha=c / S, gamma=0.0))
        else:
            orders.append(relative_frequency_groups(c, index.pre[n], counts.ngrams[n - 2].shape[0],
                                                    zero_gamma_per_context))
    return orders


def relative_frequency_groups(c: np.ndarray, ctx: np.ndarray, m_ctx: int, zero_gamma_per_context: bool) -> Order:
    """c(hw)/c(h) of an order n >= 2 (raw counts, float64), ``ctx`` numbering the contexts."""
    S = group_sums(ctx, m_ctx, c)
    gamma = np.zeros_like(S) if zero_gamma_per_context else 0.0
    return Order(alpha=c / np.where(S > 0, S, 1.0)[ctx], gamma=gamma)


def good_turing_discounts(c: np.ndarray, K: int = KATZ_K) -> tuple[np.ndarray, int]:
    """Katz's discount ratios d_r (r = 0..K; d_0 unused) of one order, and the K actually used.

    d_r = (r*/r - A)/(1 - A), r* = (r+1) n_{r+1}/n_r, A = (K+1) n_{K+1}/n_1. K is lowered until every
    d_r lies in (0, 1]; K = 0 means no discounting for that order."""
    return good_turing_of(count_of_counts(c, K + 1), K)


def good_turing_of(nk: np.ndarray, K: int = KATZ_K) -> tuple[np.ndarray, int]:
    """``good_turing_discounts`` from the counts of counts n_0..n_{K+1} (sums over partitions)."""
    nk = np.asarray(nk[: K + 2]).astype(np.float64)
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
        c = raw_counts(counts, n)
        d, K = good_turing_discounts(c)
        used.append(K)
        if K < KATZ_K:
            warn(f"Good-Turing discounts of order {n} are only valid up to count {K}; counts above are not discounted")
        dc = katz_discounted(c, d, K)
        if n == 1:
            S = float(c.sum())
            check_nonempty(S)
            unseen = (c == 0)
            unseen[BOS_ID] = False
            base = unseen / unseen.sum() if unseen.any() else None
            left = float(np.sum(c - dc))
            # with no unseen word there is nothing to reserve mass for
            k = float(katz_denominators(np.array([S]), np.array([left]))[0]) if base is not None else 0.0
            enlarged.append(int(k > 0))
            alpha = dc / (S + k)
            orders.append(Order(alpha=alpha, gamma=max(0.0, (left + k) / (S + k))))
        else:
            o, k_nonzero = katz_groups(c, dc, index.pre[n], counts.ngrams[n - 2].shape[0])
            enlarged.append(k_nonzero)
            orders.append(o)
    if base is not None:
        base = base.astype(np.float64)
    return assemble(counts, index, orders, "backoff", "katz", {"good_turing_max": used, "katz_enlarged": enlarged},
                     prune, base=base)


def katz_discounted(c: np.ndarray, d: np.ndarray, K: int) -> np.ndarray:
    """Katz's discounted counts d_r r of raw counts c (d from ``good_turing_discounts``)."""
    ratio = np.ones(max(int(c.max()) if c.size else 0, K) + 1)
    ratio[: K + 1] = d[: K + 1]
    return ratio[c] * c


def katz_groups(c: np.ndarray, dc: np.ndarray, ctx: np.ndarray, m_ctx: int) -> tuple[Order, int]:
    """Katz of an order n >= 2 (raw counts c, discounted dc), ``ctx`` numbering the contexts; and the
    number of contexts whose denominator was enlarged."""
    S = group_sums(ctx, m_ctx, c.astype(np.float64))
    left = group_sums(ctx, m_ctx, c - dc)
    k = katz_denominators(S, left)
    den = np.where(S > 0, S + k, 1.0)
    alpha = dc / den[ctx]
    gamma = np.where(S > 0, (left + k) / den, 0.0)
    return Order(alpha=alpha, gamma=gamma), int(np.count_nonzero(k))


def stupid_backoff(counts: Counts, alpha: float = STUPID_ALPHA, prune=None, warn=None) -> NGramModel:
    """Stupid backoff (Brants et al. 2007): S(w|h) = c(hw)/c(h) if seen, else alpha S(w|h');
    S(w) = c(w)/N. Scores, not probabilities (scores_only=True)."""
    if not 0 < alpha <= 1:
        raise LmError(f"stupid backoff needs 0 < alpha <= 1, got {alpha}", "e.g. --alpha 0.4")
    index = Index(counts.ngrams)
    orders = _relative_frequencies(counts, index, zero_gamma_per_context=False)
    return assemble(counts, index, orders, "stupid", "stupid", {"alpha": float(alpha)}, prune,
                     stupid_alpha=alpha)
