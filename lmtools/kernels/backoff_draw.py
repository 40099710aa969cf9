"""Drawing the next word of a back-off n-gram model (numba, no I/O): the nested and the explicit way.

The distribution is that of kernels/backoff_distribution.py (a ``FlatModel``); the choice rules
(temperature, top-k, top-p, greedy, ``<unk>``) those of kernels/draw.py (``DrawOptions``).

- explicit (any temperature, top-k, top-p, greedy; any model): ``context_step`` sets the words with
  an n-gram after a suffix of the context; every word left unset gets ``B * uni[w]``. The unigram part
  is never written out: ``choose_lazy`` draws it from the cumulative unigram weights, rejecting words
  already set (or scans when those hold most of the unigram mass).
- nested (plain sampling from a normalized model, the default): since sum_w P_j(w) = 1, the
  successors of s_j hold mass A_j = cum difference and the rest, 1 - A_j, is P_{j-1} restricted to
  words outside S_j: draw u; below A_j pick a successor by binary search in ``cum``, otherwise draw
  from P_{j-1} until the word is outside S_j (membership: a binary search). A step costs a few binary
  searches whatever the vocabulary size. It falls back to the explicit way after too many rejections.
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from lmtools.kernels.backoff_distribution import bound, context_row
from lmtools.kernels.draw import first_above, uniform
from lmtools.vocab import BOS_ID, UNK_ID


class UnigramWeights(NamedTuple):
    """The unigram part of the explicit draw at one temperature (lmtools/ngram/sample.py builds it)."""

    uq: np.ndarray  # float64 (V,): (uni / umax)^(1/T), 0 for words never drawn (<s>, <unk> unless allowed)
    ucum: np.ndarray  # float64 (V,): running sums of uq
    uorder: np.ndarray  # int64: the words of positive uq, by unigram p descending (ties by id)
    umax: float  # the largest unigram p of a word that may be drawn
    total: float  # the sum of uq


class Candidates(NamedTuple):
    """Scratch of ``choose_lazy`` (V entries each)."""

    weight: np.ndarray  # float64: the explicit words' weights
    words: np.ndarray  # int32: top-k / top-p candidates, most likely first
    weights: np.ndarray  # float64: their weights


class Suffixes(NamedTuple):
    """Scratch of ``nested_draw``: per suffix length j (``order`` entries each)."""

    lo: np.ndarray  # int64: the successor rows of suffix j are lo[j] .. hi[j]-1
    hi: np.ndarray  # int64
    mass: np.ndarray  # float64: their probability mass A_j
    backoff: np.ndarray  # float64: the suffix's backoff factor


# ----------------------------------------------------------------------------------------------
# The nested draw (plain sampling from a normalized model)


@njit(cache=True)
def _in_range(ids, base, n, lo, hi, w):
    """Is w the last word of one of rows lo..hi-1 of order n (they share their first n-1 words)?"""
    j = n - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        x = ids[base + mid * n + j]
        if x < w:
            lo = mid + 1
        elif x > w:
            hi = mid
        else:
            return True
    return False


@njit(cache=True)
def nested_draw(F, order, hist, hs, k, allow_unk, states, s, max_draws, X):
    """Draw w ~ p(. | hist[hs:hs+k]) (conditioned on w != <unk> unless allowed) by the nested way.

    ``X``: a ``Suffixes`` scratch. Returns (w, p(w | h)), or (-1, 0) after ``max_draws`` candidate
    draws (the caller then uses the explicit way).
    """
    ids = F.ids
    id_base = F.id_base
    row_base = F.row_base
    n_rows = F.n_rows
    pr = F.pr
    bof = F.bof
    cum = F.cum
    uni = F.uni
    uni_bo = F.uni_bo
    ucum = F.ucum
    lo = X.lo
    hi = X.hi
    A = X.mass
    bf = X.backoff
    if k > order - 1:
        hs += k - (order - 1)
        k = order - 1
    for j in range(k, 0, -1):
        qs = hs + k - j
        n = j + 1
        m = n_rows[n]
        lo[j] = 0
        hi[j] = 0
        A[j] = 0.0
        if m > 0:
            base = id_base[n]
            lo[j] = bound(ids, base, n, m, hist, qs, j, False)
            hi[j] = bound(ids, base, n, m, hist, qs, j, True)
            cb = row_base[n] + n - 2
            a = cum[cb + hi[j]] - cum[cb + lo[j]]
            A[j] = min(max(a, 0.0), 1.0)
        if j == 1:  # the suffix's backoff factor (1 if it is not in the model)
            bf[j] = uni_bo[hist[qs]]
        else:
            r = context_row(ids, id_base, row_base, n_rows, hist, qs, j)
            bf[j] = bof[r] if r >= 0 else 1.0
    V = uni.shape[0]
    total_uni = ucum[V - 1]
    draws = 0
    lev = k
    while draws < max_draws:
        draws += 1
        L = lev
        while L > 0 and (A[L] <= 0.0 or uniform(states, s) >= A[L]):
            L -= 1
        if L == 0:
            w = first_above(ucum, 0, 0, V - 1, uniform(states, s) * total_uni)
            p = uni[w]
        else:
            n = L + 1
            base = id_base[n]
            cb = row_base[n] + n - 2
            c0 = cum[cb + lo[L]]
            x = c0 + uniform(states, s) * (cum[cb + hi[L]] - c0)
            a = first_above(cum, cb + 1, lo[L], hi[L] - 1, x)
            w = ids[base + a * n + L]
            p = pr[row_base[n] + a]
        # the draw stood for P_{i-1} on behalf of each level i above L: it must be outside S_i
        ok = True
        for i in range(L + 1, k + 1):
            if hi[i] > lo[i] and _in_range(ids, id_base[i + 1], i + 1, lo[i], hi[i], w):
                lev = i - 1
                ok = False
                break
            p *= bf[i]
        if not ok:
            continue
        if (w == UNK_ID and not allow_unk) or p <= 0.0:
            lev = k  # condition the whole distribution on w != <unk>: start again
            continue
        return w, p
    return -1, 0.0


# ----------------------------------------------------------------------------------------------
# The explicit draw


@njit(cache=True)
def _sorted_desc(E, nE, wq):
    """The words E[:nE] by weight wq descending (ties: smaller word id first)."""
    Es = np.sort(E[:nE])
    key = np.empty(nE, np.float64)
    for i in range(nE):
        key[i] = -wq[Es[i]]
    return Es[np.argsort(key, kind="mergesort")]


@njit(cache=True)
def choose_lazy(S, nE, B, Bt, gen, uni, U, opts, states, s, C):
    """Draw the next word from the lazy distribution of one step (see the module docstring).

    ``S`` (``StepBuffers``), ``nE``, ``B``: the step as ``context_step`` left it; ``Bt``: B^(1/T) from
    ``context_step_t``, which filled S.vt (Bt < 0: not given, weights are computed with pow).
    ``gen``: the step's stamp; ``uni``: the unigram p; ``U``: the ``UnigramWeights`` of the
    temperature; ``opts``: the ``DrawOptions``; ``C``: a ``Candidates`` scratch. Draws from stream s.
    Returns the word, or -1 when none has weight.
    """
    val = S.val
    stamp = S.stamp
    vt = S.vt
    E = S.words
    uq = U.uq
    ucum = U.ucum
    uorder = U.uorder
    umax = U.umax
    Uq = U.total
    inv_t = opts.inv_t
    top_k = opts.top_k
    top_p = opts.top_p
    allow_unk = opts.allow_unk
    wq = C.weight
    cw = C.words
    cq = C.weights
    V = uq.shape[0]
    if opts.greedy:  # the largest p among the explicit words and the best unset word
        best = -1
        bp = 0.0
        for i in range(nE):
            w = E[i]
            if w == BOS_ID or (w == UNK_ID and not allow_unk):
                continue
            p = val[w]
            if p > bp or (p == bp and p > 0.0 and w < best):
                best, bp = w, p
        for i in range(uorder.shape[0]):
            w = uorder[i]
            if stamp[w] == gen or uq[w] <= 0.0:
                continue
            p = B * uni[w]
            if p > bp or (p == bp and p > 0.0 and w < best):
                best, bp = w, p
            break
        return best

    # Scale so that the largest weight is 1 (no underflow at small temperatures).
    M = B * umax
    for i in range(nE):
        w = E[i]
        if val[w] > M and w != BOS_ID and (w != UNK_ID or allow_unk):
            M = val[w]
    if M <= 0.0:
        return -1
    tempered = Bt >= 0.0
    Mt = M ** inv_t
    if tempered and not (Mt > 1e-280):
        tempered = False  # would underflow: scale each weight by pow instead
    if tempered:
        c = Bt * umax ** inv_t / Mt if B > 0.0 else 0.0
    else:
        c = (B * umax / M) ** inv_t if B > 0.0 else 0.0
    Q = 0.0
    sumEu = 0.0
    for i in range(nE):
        w = E[i]
        if w == BOS_ID or (w == UNK_ID and not allow_unk) or val[w] <= 0.0:
            wq[w] = 0.0
        elif inv_t == 1.0:
            wq[w] = val[w] / M
        elif tempered:
            wq[w] = vt[w] / Mt
        else:
            wq[w] = (val[w] / M) ** inv_t
        Q += wq[w]
        sumEu += uq[w]
    rest = Uq - sumEu
    exact_rest = rest < 1e-4 * Uq
    if exact_rest:  # the explicit words hold almost all unigram mass: sum the rest exactly
        rest = 0.0
        for w in range(V):
            if stamp[w] != gen:
                rest += uq[w]
    R = c * rest if rest > 0.0 else 0.0
    total = Q + R
    if total <= 0.0:
        return -1

    if top_k > 0 or top_p < 1.0:
        # Candidates most likely first: the explicit words sorted, merged with the unset words in
        # unigram order (their weights c * uq keep that order).
        if 0 < top_k < nE // 4:  # only the k largest explicit weights can be among the top k
            x = np.empty(nE, np.float64)
            for i in range(nE):
                x[i] = wq[E[i]]
            thr = np.partition(x, nE - top_k)[nE - top_k]
            keep = np.empty(nE, np.int32)
            nk = 0
            for i in range(nE):
                if wq[E[i]] >= thr:
                    keep[nk] = E[i]
                    nk += 1
            Es = _sorted_desc(keep, nk, wq)
        elif top_k <= 0 and nE > 64:
            # top-p: find a threshold tau with weight >= top_p * total above it, and sort only
            # the explicit words above tau (the nucleus lies above it)
            target = top_p * total
            tau = 1.0
            while True:
                tau *= 0.0625
                above = 0.0
                for i in range(nE):
                    if wq[E[i]] >= tau:
                        above += wq[E[i]]
                for i in range(uorder.shape[0]):
                    w = uorder[i]
                    x = c * uq[w]
                    if x < tau:
                        break
                    if stamp[w] != gen:
                        above += x
                if above >= target or tau < 1e-300:
                    break
            keep = np.empty(nE, np.int32)
            nk = 0
            for i in range(nE):
                if wq[E[i]] >= tau:
                    keep[nk] = E[i]
                    nk += 1
            Es = _sorted_desc(keep, nk, wq)
        else:
            Es = _sorted_desc(E, nE, wq)
        nE = Es.shape[0]
        limit = top_k if top_k > 0 else V
        target = top_p * total if top_k <= 0 else np.inf
        nc = 0
        acc = 0.0
        a = 0
        b = 0
        nU = uorder.shape[0]
        while nc < limit and acc < target:
            if a < nE and wq[Es[a]] <= 0.0:
                a = nE  # sorted: the rest are zero too
            while b < nU and (stamp[uorder[b]] == gen or uq[uorder[b]] <= 0.0):
                b += 1
            wa = Es[a] if a < nE else -1
            qa = wq[wa] if a < nE else 0.0
            wb = uorder[b] if b < nU else -1
            qb = c * uq[wb] if b < nU else 0.0
            if qa <= 0.0 and qb <= 0.0:
                break
            if qb > qa or (qb == qa and wb < wa):
                cw[nc] = wb
                cq[nc] = qb
                b += 1
            else:
                cw[nc] = wa
                cq[nc] = qa
                a += 1
            acc += cq[nc]
            nc += 1
        if nc == 0:
            return -1
        if top_k > 0 and top_p < 1.0:  # the nucleus within the top k
            goal = top_p * acc
            acc2 = 0.0
            for i in range(nc):
                acc2 += cq[i]
                if acc2 >= goal:
                    nc = i + 1
                    acc = acc2
                    break
        u = uniform(states, s) * acc
        for i in range(nc):
            u -= cq[i]
            if u < 0.0:
                return cw[i]
        return cw[nc - 1]

    u = uniform(states, s) * total
    if u < Q:
        last = -1
        for i in range(nE):
            w = E[i]
            if wq[w] > 0.0:
                last = w
                u -= wq[w]
                if u < 0.0:
                    return w
        if R <= 0.0:
            return last
    # an unset word, by its unigram weight
    if not exact_rest and rest >= 0.25 * Uq:
        for _ in range(64):  # rejection: accepts with probability rest/Uq >= 1/4
            w = first_above(ucum, 0, 0, V - 1, uniform(states, s) * Uq)
            if stamp[w] != gen and uq[w] > 0.0:
                return w
    x = uniform(states, s) * rest
    last = -1
    for w in range(V):
        if stamp[w] != gen and uq[w] > 0.0:
            last = w
            x -= uq[w]
            if x < 0.0:
                return w
    return last
