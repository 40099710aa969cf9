"""Exact next-word distributions of a back-off n-gram model (numba, no I/O): the context walk.

The flat model (``FlatModel``). Orders 2..N are stored row after row in one int32 array ``ids``: the
rows of order n (sorted lexicographically, oldest word first) begin at ``ids[id_base[n]]`` and there
are ``n_rows[n]`` of them; row r's probability 10^logprob and backoff factor 10^backoff are
``pr[row_base[n] + r]`` and ``bof[row_base[n] + r]``; ``cum[row_base[n] + n - 2 + r]`` is the sum of
``pr`` over rows 0..r-1 of order n (n_rows[n] + 1 values per order), so the mass of a context's
successors and a draw among them cost a binary search. Unigrams are dense by word id: ``uni[w]`` =
p(w) (0 for ``<s>``, which is only a context, and for a word without a unigram), ``uni_bo[w]`` its
backoff factor, ``ucum`` the cumulative sum of ``uni``. lmtools/ngram/sample.py builds it.

Exact conditional distribution (the ARPA back-off rule, as the query engine scores):
    p(w | h) = p(h_m w) * prod_{suffixes s of h longer than h_m, s in the model} 10^bo(s)
with h_m w the longest n-gram of the model. Written per suffix s_j of h (j words, s_0 empty,
S_j = the words with an n-gram s_j w): P_j(w) = p(s_j w) for w in S_j, else bo(s_j) P_{j-1}(w).

One step of the walk (``context_step``) goes over the suffixes from the longest to the shortest:
the successors of each (a contiguous range of rows) not set by a longer suffix get their p times the
backoffs of the longer suffixes; every word left unset has p(w | h) = B * uni[w], with B the product
of all the backoffs. The step costs the successors it touches, never the vocabulary.
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from lmtools.kernels.flat_model import FlatModel  # noqa: F401  (the kernels' argument, defined without numba)
from lmtools.vocab import BOS_ID


class Tempered(NamedTuple):
    """A FlatModel's factors to the power 1/T, for the explicit draw at temperature T."""

    pr: np.ndarray
    bof: np.ndarray
    uni_bo: np.ndarray


class StepBuffers(NamedTuple):
    """Where ``context_step`` leaves a step's explicit words (V entries each; reused step after step:
    a word's values are current when ``stamp[w]`` equals the step's number)."""

    stamp: np.ndarray  # int64: the step that last set the word
    val: np.ndarray  # float64: p(w | h)
    vt: np.ndarray  # float64: p(w | h)^(1/T) (may be val itself when not tempering)
    words: np.ndarray  # int32: the words set, in the order the walk met them


@njit(cache=True, inline="always")
def _cmp_row(ids, o, q, qs, L):
    for j in range(L):
        a = ids[o + j]
        b = q[qs + j]
        if a < b:
            return -1
        if a > b:
            return 1
    return 0


@njit(cache=True)
def bound(ids, base, n, m, q, qs, L, upper):
    """First row of order n (m rows at ids[base:]) whose first L ids are >= q[qs:qs+L]
    (> with ``upper``)."""
    lo = 0
    hi = m
    while lo < hi:
        mid = (lo + hi) >> 1
        c = _cmp_row(ids, base + mid * n, q, qs, L)
        if c < 0 or (upper and c == 0):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def context_row(ids, id_base, row_base, n_rows, hist, qs, j):
    """Index in pr/bof of the order-j row hist[qs:qs+j] (j >= 2) of the flat model whose arrays these
    are, or -1 if it is not in the model."""
    # Arrays, not the FlatModel (each field read from it is an array counted anew), one return,
    # and a comparison loop that ends in its condition: the walks inline this for every suffix,
    # and early returns left numba's reference counting of the model's arrays (atomic operations,
    # a dozen a suffix) in their loops.
    m = n_rows[j]
    base = id_base[j]
    rb = row_base[j]
    r = bound(ids, base, j, m, hist, qs, j, False)  # 0 when m == 0
    same = r < m
    c = 0
    while same and c < j:
        same = ids[base + r * j + c] == hist[qs + c]
        c += 1
    return rb + r if same else -1


@njit(cache=True)
def context_step(F, order, hist, hs, k, stamp, gen, val, E):
    """Explicit part of p(. | hist[hs:hs+k]) (the last order-1 of those k context words are used).

    Sets ``val[w]`` (and ``stamp[w] = gen``) for every word with an n-gram of order >= 2 after a
    suffix of the context, lists those words in ``E`` and returns (their number, B): every other
    word w has p(w | h) = B * uni[w].
    """
    nE, B, Bt = context_step_t(F, Tempered(F.pr, F.bof, F.uni_bo), order, hist, hs, k,
                               StepBuffers(stamp, val, val, E), gen)
    return nE, B


@njit(cache=True)
def context_step_t(F, Ft, order, hist, hs, k, S, gen):
    """``context_step`` into the ``StepBuffers`` S that also fills S.vt from the tempered factors
    Ft (a ``Tempered``): vt[w] = val[w]^(1/T) for the explicit words; returns (nE, B, B^(1/T))."""
    ids = F.ids
    id_base = F.id_base
    row_base = F.row_base
    n_rows = F.n_rows
    pr = F.pr
    bof = F.bof
    uni_bo = F.uni_bo
    prt = Ft.pr
    boft = Ft.bof
    uni_bot = Ft.uni_bo
    stamp = S.stamp
    val = S.val
    vt = S.vt
    E = S.words
    nE = 0
    B = 1.0
    Bt = 1.0
    if k > order - 1:
        hs += k - (order - 1)
        k = order - 1
    for j in range(k, 0, -1):
        qs = hs + k - j
        n = j + 1
        m = n_rows[n]
        if m > 0:
            base = id_base[n]
            lo = bound(ids, base, n, m, hist, qs, j, False)
            hi = bound(ids, base, n, m, hist, qs, j, True)
            rb = row_base[n]
            for r in range(lo, hi):
                w = ids[base + r * n + j]
                if stamp[w] != gen:
                    stamp[w] = gen
                    val[w] = B * pr[rb + r]
                    vt[w] = Bt * prt[rb + r]
                    E[nE] = w
                    nE += 1
        if j == 1:
            B *= uni_bo[hist[qs]]
            Bt *= uni_bot[hist[qs]]
        else:
            r = context_row(ids, id_base, row_base, n_rows, hist, qs, j)
            if r >= 0:
                B *= bof[r]
                Bt *= boft[r]
    return nE, B, Bt


@njit(cache=True)
def dense_distribution(F, order, hist):
    """p(w | hist) for every word w (float64, <s> = 0): the last order-1 words of ``hist`` used."""
    uni = F.uni
    V = uni.shape[0]
    stamp = np.zeros(V, np.int64)
    val = np.zeros(V, np.float64)
    E = np.empty(V, np.int32)
    k = min(hist.shape[0], order - 1)
    nE, B = context_step(F, order, hist, hist.shape[0] - k, k, stamp, 1, val, E)
    out = np.empty(V, np.float64)
    for w in range(V):
        out[w] = val[w] if stamp[w] == 1 else B * uni[w]
    out[BOS_ID] = 0.0
    return out


@njit(cache=True)
def word_logprobs(F, order, hist, start):
    """log10 p(hist[t] | hist[:t]) for t = start .. len-1 (float64; -inf for p = 0)."""
    uni = F.uni
    V = uni.shape[0]
    stamp = np.zeros(V, np.int64)
    val = np.zeros(V, np.float64)
    E = np.empty(V, np.int32)
    out = np.empty(hist.shape[0] - start, np.float64)
    for t in range(start, hist.shape[0]):
        k = min(t, order - 1)
        nE, B = context_step(F, order, hist, t - k, k, stamp, t + 1, val, E)
        w = hist[t]
        p = val[w] if stamp[w] == t + 1 else B * uni[w]
        if w == BOS_ID:
            p = 0.0
        out[t - start] = np.log10(p) if p > 0.0 else -np.inf
    return out
