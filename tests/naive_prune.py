"""Plain-Python reference for entropy-based pruning (Stolcke 1998), tests only.

A model is a dict {id tuple: [log10 p, log10 backoff]} (plain floats). Everything is written out
from the paper, one n-gram at a time: the back-off query by recursion, the history probability by
the chain rule (the sentence start <s> taking p(</s>)), the relative entropy of removing (h, w)

    D = -P(h) { p(w|h) [ln p(w|h') + ln a'(h) - ln p(w|h)] + (1 - S) [ln a'(h) - ln a(h)] },
    a(h) = (1 - S) / (1 - L),  a'(h) = (1 - S + p(w|h)) / (1 - L + p(w|h'))

(S, L: sums of p(v|h), p(v|h') over the explicit extensions v of h), the criterion exp(D) - 1,
removal highest order first of the n-grams below the threshold that are not the context of a
kept longer n-gram, and the backoffs of the contexts whose distribution changed recomputed.
No numpy in the arithmetic (np.float32 only to round a new backoff as a model file stores it).
Also the definition itself, for checking the closed form: the divergence summed over the whole
vocabulary (``brute_force_divergence``). Independent of lmtools.ngram.prune's arrays.
"""

from __future__ import annotations

import math

import numpy as np

UNK, BOS, EOS = 0, 1, 2
LOG_ZERO = -99.0


def table(model) -> dict:
    """{id tuple: [log10 p, backoff]} of an NGramModel."""
    out = {}
    for n in range(model.order):
        for row, lp, bo in zip(model.ngrams[n].tolist(), model.logprob[n].tolist(), model.backoff[n].tolist()):
            out[tuple(row)] = [lp, bo]
    return out


def order_of(t: dict) -> int:
    return max(len(g) for g in t)


def logp(t: dict, h: tuple, w: int, N: int) -> float:
    """log10 p(w | h) by the back-off rule."""
    h = h[len(h) - (N - 1):] if len(h) > N - 1 else h
    if h + (w,) in t:
        return t[h + (w,)][0]
    if not h:
        return t[(w,)][0] if (w,) in t else t[(UNK,)][0]
    bo = t[h][1] if h in t else 0.0
    return bo + logp(t, h[1:], w, N)


def history_prob(t: dict, h: tuple, N: int) -> float:
    """P(h) by the chain rule; <s> (only ever a context) as likely as </s>."""
    P = 1.0
    for i, w in enumerate(h):
        if w == BOS:
            P *= 10.0 ** logp(t, (), EOS, N)
        else:
            P *= 10.0 ** logp(t, h[:i], w, N)
    return P


def extensions(t: dict) -> dict:
    """{context: [words v with context+(v,) in t]}."""
    ext: dict = {}
    for g in t:
        if len(g) >= 2:
            ext.setdefault(g[:-1], []).append(g[-1])
    return ext


def criteria(t: dict) -> dict:
    """{n-gram of order >= 2: exp(D) - 1}."""
    N = order_of(t)
    ext = extensions(t)
    out = {}
    for h, words in ext.items():
        S = sum(10.0 ** t[h + (v,)][0] for v in words)
        L = sum(10.0 ** logp(t, h[1:], v, N) for v in words)
        Ph = history_prob(t, h, N)
        num, den = max(1.0 - S, 0.0), max(1.0 - L, 0.0)
        for w in words:
            p = 10.0 ** t[h + (w,)][0]
            q = 10.0 ** logp(t, h[1:], w, N)
            out[h + (w,)] = math.expm1(Ph * divergence(p, q, num, den))
    return out


def divergence(p: float, q: float, num: float, den: float) -> float:
    """The braces of the paper's formula, negated, for one n-gram (>= 0, clipped against rounding)."""
    if num > 0 and den == 0:
        return math.inf  # the backed-off words would need an infinite weight: never removed
    a_new = (num + p) / (den + q)
    first = p * (math.log(q) + math.log(a_new) - math.log(p)) if p > 0 else 0.0
    second = num * (math.log(a_new) - math.log(num / den)) if num > 0 else 0.0
    return max(-(first + second), 0.0)


def kept_ngrams(t: dict, threshold: float, crit: dict) -> set:
    """The n-grams that pruning at ``threshold`` keeps, highest order first: every unigram, and
    every other n-gram whose criterion reaches the threshold or that a kept longer n-gram extends."""
    N = order_of(t)
    kept = {g for g in t if len(g) == 1 or crit[g] >= threshold}
    for n in range(N, 2, -1):
        kept |= {g[:-1] for g in kept if len(g) == n}
    return kept


def prune(t: dict, threshold: float, crit: dict | None = None) -> dict:
    """The pruned model (a new dict), judged by the criteria of the original model (``crit``:
    ``criteria(t)``, given to save computing it again)."""
    crit = criteria(t) if crit is None else crit
    kept = kept_ngrams(t, threshold, crit)
    return recompute_backoffs(t, {g: list(v) for g, v in t.items() if g in kept})


def prune_to_size(t: dict, size: int, crit: dict | None = None) -> dict:
    """The least pruning that keeps at most ``size`` n-grams: the smallest threshold among 0, the
    criterion values and the numbers just above them for which the kept n-grams fit (their number
    only falls as the threshold rises, so a bisection over the candidates finds it)."""
    crit = criteria(t) if crit is None else crit
    candidates = sorted({0.0} | set(crit.values()) | {math.nextafter(c, math.inf) for c in crit.values()})
    lo, hi = 0, len(candidates) - 1
    assert len(kept_ngrams(t, candidates[hi], crit)) <= size, "no threshold fits"
    while lo < hi:
        mid = (lo + hi) // 2
        if len(kept_ngrams(t, candidates[mid], crit)) <= size:
            hi = mid
        else:
            lo = mid + 1
    return prune(t, candidates[lo], crit)


def recompute_backoffs(t: dict, kept: dict) -> dict:
    """Backoffs of the kept contexts that lost an extension, or one of whose kept extensions' p(w|h')
    changed, recomputed as (1 - S)/(1 - L) under the pruned model, shortest contexts first."""
    N = order_of(t)
    old_ext, new_ext = extensions(t), extensions(kept)
    for k in range(1, N):
        for h in [h for h in kept if len(h) == k]:
            old, new = old_ext.get(h, []), new_ext.get(h, [])
            lost = len(new) < len(old)
            moved = any(logp(kept, h[1:], v, N) != logp(t, h[1:], v, N) for v in new)
            if not (lost or moved):
                continue
            S = sum(10.0 ** kept[h + (v,)][0] for v in new)
            L = sum(10.0 ** logp(kept, h[1:], v, N) for v in new)
            if not new or 1.0 - L <= 0:
                bo = 0.0
            elif 1.0 - S <= 0:
                bo = LOG_ZERO
            else:
                bo = float(np.float32(math.log10((1.0 - S) / (1.0 - L))))
            kept[h][1] = bo
    return kept


def context_sums(t: dict, V: int) -> dict:
    """{context: sum over every word but <s> of p(w | context)} for every n-gram below the top order."""
    N = order_of(t)
    return {h: sum(10.0 ** logp(t, h, w, N) for w in range(V) if w != BOS) for h in t if len(h) < N}


def brute_force_divergence(t: dict, g: tuple, V: int) -> float:
    """P(h) * KL(p(.|h) || p'(.|h)) summed over the vocabulary, where p' is the model without g and
    with h's backoff chosen so that p'(.|h) sums to what p(.|h) sums to; for checking the closed form."""
    N = order_of(t)
    h = g[:-1]
    words = [w for w in range(V) if w != BOS]
    without = {k: list(v) for k, v in t.items() if k != g}
    explicit = {g2[-1] for g2 in without if len(g2) == len(g) and g2[:-1] == h}
    total = sum(10.0 ** logp(t, h, w, N) for w in words)
    kept_mass = sum(10.0 ** without[h + (v,)][0] for v in explicit)
    lower_mass = sum(10.0 ** logp(t, h[1:], w, N) for w in words if w not in explicit)
    without[h][1] = math.log10((total - kept_mass) / lower_mass)
    kl = 0.0
    for w in words:
        p, p_new = 10.0 ** logp(t, h, w, N), 10.0 ** logp(without, h, w, N)
        kl += p * math.log(p / p_new)
    return history_prob(t, h, N) * kl


def normalized(t: dict, V: int) -> dict:
    """The model with float64 values made exactly normalized: unigrams scaled to sum to one, then
    every context's backoff set so that its distribution sums to one (shortest contexts first)."""
    N = order_of(t)
    out = {k: list(v) for k, v in t.items()}
    words = [w for w in range(V) if w != BOS]
    z = sum(10.0 ** out[(w,)][0] for w in words if (w,) in out)
    for k in out:
        if len(k) == 1 and k[0] != BOS:
            out[k][0] -= math.log10(z)
    ext = extensions(out)
    for k in range(1, N):
        for h in [h for h in out if len(h) == k]:
            vs = ext.get(h, [])
            S = sum(10.0 ** out[h + (v,)][0] for v in vs)
            L = sum(10.0 ** logp(out, h[1:], v, N) for v in vs)
            out[h][1] = math.log10((1.0 - S) / (1.0 - L)) if vs else 0.0
    return out
